package sim

import (
	"os"
	"strconv"
	"strings"
	"time"
)

func init() {
	spec := os.Getenv("RBPOL")
	if spec == "" {
		return
	}
	p := SimRebalancePolicy()
	for _, kv := range strings.Split(spec, ",") {
		k, v, _ := strings.Cut(kv, "=")
		d, _ := time.ParseDuration(v)
		f, _ := strconv.ParseFloat(v, 64)
		switch k {
		case "horizon":
			p.Horizon = d
		case "fh":
			p.FloorHorizon = d
		case "floor":
			p.Floor = uint64(f)
		case "hyst":
			p.Hysteresis = f
		case "minmove":
			p.MinMove = uint64(f)
		case "rw":
			p.RejectWeight = f
		case "cap":
			p.MaxMovePerSKU = uint64(f)
		}
	}
	testPolicy = &p
}
