from millnet.cli import main

main()
