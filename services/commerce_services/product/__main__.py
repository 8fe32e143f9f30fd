from commerce_services.product.main import main

raise SystemExit(main())
