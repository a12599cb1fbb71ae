from dispatcher.cli.app import run

run()
