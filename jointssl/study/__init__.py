"""The paper's study in one command: objectives x sensor subsets x seeds, each pre-trained and evaluated,
then one table with intervals and paired tests (``jointssl study``)."""
