from commerce_services.search.main import main

raise SystemExit(main())
