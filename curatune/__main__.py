from curatune.cli import main

main()
