package device

import "github.com/sentinel-iot/sentinel/proto"

// Region is a geographic cohort of the fleet. Regions differ in how many
// devices they hold, how often the rollout fails there and how good and how
// steady the radio signal is, so that cohort analytics have something to
// find.
type Region struct {
	// Name is the region's identifier, used as the topic level; it must pass
	// proto.ValidateID.
	Name string
	// Weight is the region's relative share of the fleet.
	Weight float64
	// FailureBias multiplies the fleet's failure share for devices here.
	FailureBias float64
	// RSSIMean is the mean signal strength of devices here, in dBm.
	RSSIMean float64
	// RSSINoise is the standard deviation, in dB, of one reading around a
	// device's own mean: how unsteady the radio links of the region are.
	RSSINoise float64
	// TemperatureOffsetC is added to a model's board temperature for
	// devices here: outdoor devices in a cold climate run cold, and a
	// cold cell's resistance, so a flash write's sag, is higher.
	TemperatureOffsetC float64
}

// DefaultRegions returns the eight regions a generated fleet spreads over,
// a fresh copy each call.
func DefaultRegions() []Region {
	return []Region{
		{Name: "eu-west", Weight: 0.20, FailureBias: 0.8, RSSIMean: -72, RSSINoise: 2.5},
		{Name: "eu-north", Weight: 0.08, FailureBias: 0.6, RSSIMean: -76, RSSINoise: 2.5, TemperatureOffsetC: -30},
		{Name: "us-east", Weight: 0.18, FailureBias: 1.0, RSSIMean: -74, RSSINoise: 3, TemperatureOffsetC: -12},
		{Name: "us-west", Weight: 0.12, FailureBias: 0.9, RSSIMean: -73, RSSINoise: 3},
		{Name: "sa-east", Weight: 0.10, FailureBias: 1.5, RSSIMean: -88, RSSINoise: 4.5},
		{Name: "ap-south", Weight: 0.14, FailureBias: 2.0, RSSIMean: -93, RSSINoise: 5},
		{Name: "ap-northeast", Weight: 0.10, FailureBias: 0.7, RSSIMean: -70, RSSINoise: 2},
		{Name: "af-south", Weight: 0.08, FailureBias: 1.8, RSSIMean: -96, RSSINoise: 6},
	}
}

// Model is a hardware model of the fleet.
type Model struct {
	// Name is the model's identifier.
	Name string
	// Weight is the model's relative share of the fleet.
	Weight float64
	// TemperatureC is the model's typical board temperature at rest.
	TemperatureC float64
	// CapacityMAh is the nominal capacity of the model's battery: the same
	// current drains a small battery faster.
	CapacityMAh float64
	// Hardware is the model's battery, loads and flash layout.
	Hardware
}

// DefaultModels returns the hardware models a generated fleet is built
// from, a fresh copy each call. The mix is 55 % A/B (the tracker, an
// ESP32-class MCU with two OTA app partitions, and the Linux gateway) and
// 45 % single bank (the meter's in-place MCU update and the camera's one
// rootfs); PHYSICS.md gives the source of each figure.
func DefaultModels() []Model {
	return []Model{
		{Name: "tracker-t1", Weight: 0.35, TemperatureC: 31, CapacityMAh: 1200, Hardware: Hardware{
			Storage: proto.StorageAB, RIntOhm: 0.20, BrownoutV: 3.40,
			FlashMA: 120, ImageKB: 1536, WriteKBps: 60, RadioMA: 180, DownloadKBps: 20}},
		{Name: "meter-m2", Weight: 0.30, TemperatureC: 28, CapacityMAh: 3000, Hardware: Hardware{
			Storage: proto.StorageSingle, RIntOhm: 0.12, BrownoutV: 3.45,
			FlashMA: 90, ImageKB: 512, WriteKBps: 60, RadioMA: 150, DownloadKBps: 5}},
		{Name: "gateway-g3", Weight: 0.20, TemperatureC: 42, CapacityMAh: 5000, Hardware: Hardware{
			Storage: proto.StorageAB, RIntOhm: 0.08, BrownoutV: 3.50,
			FlashMA: 450, ImageKB: 32768, WriteKBps: 4000, RadioMA: 400, DownloadKBps: 500}},
		{Name: "camera-c1", Weight: 0.15, TemperatureC: 47, CapacityMAh: 2400, Hardware: Hardware{
			Storage: proto.StorageSingle, RIntOhm: 0.10, BrownoutV: 3.50,
			FlashMA: 380, ImageKB: 8192, WriteKBps: 2000, RadioMA: 300, DownloadKBps: 200}},
	}
}
