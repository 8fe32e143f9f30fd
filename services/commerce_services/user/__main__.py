from commerce_services.user.main import main

raise SystemExit(main())
