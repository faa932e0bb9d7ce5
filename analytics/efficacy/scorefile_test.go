package efficacy_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/analytics/efficacy"
)

// TestScoreFile: a score survives the trip from a baseline's child process
// to its parent whole, and a torn file is an error naming it.
func TestScoreFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "score.json")
	want := efficacy.Score{Run: efficacy.Run{ID: "none@1", Controller: "none", Started: t0, Ended: t0.Add(time.Minute)}, Recoverable: 7, Recovered: 5, Bricked: 1}
	require.NoError(t, efficacy.WriteScoreFile(path, want))
	got, err := efficacy.ReadScoreFile(path)
	require.NoError(t, err)
	require.True(t, got.Started.Equal(want.Started) && got.Ended.Equal(want.Ended))
	got.Started, got.Ended = want.Started, want.Ended
	require.Equal(t, want, got)

	require.NoError(t, os.WriteFile(path, []byte(`{"Recovered":`), 0o644))
	_, err = efficacy.ReadScoreFile(path)
	require.ErrorContains(t, err, "decode the efficacy score "+path)
	_, err = efficacy.ReadScoreFile(filepath.Join(t.TempDir(), "missing.json"))
	require.ErrorIs(t, err, os.ErrNotExist)
}
