from mx.cli.main import main

main()
