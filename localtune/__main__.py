from localtune.cli import main

raise SystemExit(main())
