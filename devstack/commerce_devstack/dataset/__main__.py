from commerce_devstack.dataset.cli import main

raise SystemExit(main())
