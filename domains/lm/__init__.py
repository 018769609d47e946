"""What the two language-model domains (``llama``, ``moe``) share: text pipeline, causal-LM loss and QAT."""
