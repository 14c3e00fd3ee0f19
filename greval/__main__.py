from greval.cli import main

main()
