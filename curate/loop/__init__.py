"""The self-improvement loop: rounds of sample -> verify -> select -> train, each round an
ordinary run directory under the loop's directory."""
