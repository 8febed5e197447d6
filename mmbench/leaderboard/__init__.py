"""The leaderboard: submissions as data folders, every score recomputed from predictions, a
static site built only from them (``mmbench submit``, ``mmbench leaderboard validate|build``)."""
