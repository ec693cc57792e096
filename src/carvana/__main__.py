from carvana.cli import command

if __name__ == "__main__":  # not in the tuning pool's workers, which import this module afresh
    command()
