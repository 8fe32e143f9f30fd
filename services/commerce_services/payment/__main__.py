from commerce_services.payment.main import main

raise SystemExit(main())
