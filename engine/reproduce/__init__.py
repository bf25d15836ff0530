"""The paper reproduced claim by claim: each figure's preset over many seeds (through the sweep engine), every
claim's rate of holding with its interval, written to benchmarks/results/reproduction.json."""
