from commerce_devstack.cli import main

raise SystemExit(main())
