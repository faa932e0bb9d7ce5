// Package device is the simulator's pure model of one IoT device: the
// deterministic generation of a fleet (identity, region, hardware, battery,
// signal and the fate of its first update), the OTA state machine and the
// rules that decide how a device answers a recovery command.
//
// Nothing here touches the network or the clock: every function takes the
// values it needs, so the rules are tested as tables. The simulator package
// drives these models over MQTT.
package device
