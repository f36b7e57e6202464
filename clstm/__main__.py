from clstm.cli import main

raise SystemExit(main())
