"""transferlab: does this pretraining choice transfer to the downstream tasks I care about?"""

__version__ = "0.1.0"
