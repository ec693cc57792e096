from carvana.cli import main

if __name__ == "__main__":  # not in the tuning pool's workers, which import this module afresh
    raise SystemExit(main())
