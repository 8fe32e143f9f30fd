from commerce_services.order.main import main

raise SystemExit(main())
