package simulator_test

import (
	"fmt"

	"github.com/sentinel-iot/sentinel/simulator"
)

// A fleet is deterministic: the seed fixes every device and how its update
// ends, before anything connects.
func ExampleNew() {
	fleet, err := simulator.New(simulator.Config{Devices: 1000, Seed: 1})
	if err != nil {
		panic(err)
	}
	devices := fleet.Devices()
	ends := make(map[string]int)
	for _, d := range devices {
		ends[string(d.RolloutEnd)]++
	}
	fmt.Println(len(devices), "devices, first", devices[0].ID, "in", devices[0].Region)
	fmt.Println("partial:", ends["partial"], "install_failed:", ends["install_failed"], "verify_failed:", ends["verify_failed"],
		"boot_failed:", ends["boot_failed"], "download_failed:", ends["download_failed"])
	// Output:
	// 1000 devices, first dev-00000-fcfd52 in af-south
	// partial: 64 install_failed: 53 verify_failed: 30 boot_failed: 37 download_failed: 30
}
