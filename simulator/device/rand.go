package device

// mix is the SplitMix64 finaliser: a cheap, well-distributed hash of x.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// unit hashes its inputs to a float64 in [0, 1).
func unit(parts ...uint64) float64 {
	var h uint64
	for _, p := range parts {
		h = mix(h ^ p)
	}
	return float64(h>>11) / (1 << 53)
}
