from carvana.cli import main

raise SystemExit(main())
