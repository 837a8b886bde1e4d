"""Ranking studies: does a predictor (DNA ratings, an SPOS supernet, DANCE scores, parameter
count, FLOPs, ...) order architectures as their stand-alone accuracy does?

``nasir.ranking.train`` trains one fixed architecture to a plateau (early stopping on a held-out
split); ``nasir.ranking.study`` runs that for a set of architectures and seeds and reports the
ground truth's split-half reliability and each predictor's Kendall tau and Spearman rho with
bootstrap intervals (``nasir.ranking.stats``); ``nasir.ranking.predictors`` computes the built-in
predictors. ``bench/ranking.py`` is the command line.
"""
