"""``python -m phds.omop.vocabulary`` regenerates the shipped CSVs from the Python tables."""

from phds.omop.vocabulary.build import main

main()
