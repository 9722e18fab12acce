"""`python -m bench`: every speed figure from one run (see `bench.run`)."""

from bench.run import main

main()
