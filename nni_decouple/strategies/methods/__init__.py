"""What ``nni-decouple search METHOD`` offers for each method: its options, defaults and space, and the
builder of its strategy, named as ``"module:function"``. These modules import neither torch nor NNI
(``tests/test_cli_startup.py``), so that the CLI's parser is built in a fraction of a second; the
constants they share with the strategies are defined here and imported there."""
