from curate.entry import main

main()
