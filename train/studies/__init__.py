"""Studies built on the training library: the paper's experiment grid and tables, the learning curve, the model
comparison, the ablations, the t-SNE figure and the HTML report of a run folder.

A study may use the library (:mod:`train`); the library never imports a study (``tests/test_architecture.py``).
"""
