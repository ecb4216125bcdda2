from paysys.cli import main

main()
