package proto

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStatusWave(t *testing.T) {
	tests := []struct {
		name    string
		wave    int
		wantErr error
	}{
		{name: "no waves", wave: 0},
		{name: "first wave", wave: 1},
		{name: "last allowed", wave: MaxWave},
		{name: "negative", wave: -1, wantErr: ErrOutOfRange},
		{name: "too large", wave: MaxWave + 1, wantErr: ErrOutOfRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &StatusEvent{Header: NewHeader("dev-1", time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC), 1),
				Region: "eu-west", State: StateDownloading, Firmware: "1.4.2", TargetFirmware: "1.5.0", Wave: tt.wave}
			b, err := Encode(m)
			if tt.wantErr != nil {
				require.True(t, errors.Is(err, tt.wantErr), "got %v", err)
				var fe *FieldError
				require.ErrorAs(t, err, &fe)
				require.Equal(t, "wave", fe.Field)
				return
			}
			require.NoError(t, err)
			got, err := DecodeStatus(b)
			require.NoError(t, err)
			require.Equal(t, tt.wave, got.Wave)
		})
	}
}
