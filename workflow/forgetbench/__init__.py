"""forgetbench: measure what domain fine-tuning costs a language model in general capability."""

__version__ = "0.1.0"
