package efficacy

import (
	"encoding/json"
	"fmt"
	"os"
)

// WriteScoreFile writes one score to path as JSON, the way a run in a
// child process (`sentinel run --score-json`) hands its score to the
// parent that compares the baselines; ReadScoreFile reads it back.
func WriteScoreFile(path string, s Score) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode the efficacy score: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write the efficacy score: %w", err)
	}
	return nil
}

// ReadScoreFile reads a score WriteScoreFile wrote.
func ReadScoreFile(path string) (Score, error) {
	var s Score
	b, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("read the efficacy score: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("decode the efficacy score %s: %w", path, err)
	}
	return s, nil
}
