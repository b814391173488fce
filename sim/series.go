package sim

// Series is what the HTML report draws for one seed.
type Series struct {
	Regions []string
	Points  []Point
	Faults  []Span
}

// Point is one sample: available units per region (-1: down) and holds
// granted / refused since the previous sample.
type Point struct {
	T        float64 // seconds
	Avail    []int64
	Granted  uint64
	Rejected uint64
}

// Span is one fault episode.
type Span struct {
	From, To float64 // seconds
	Kind     string  // partition | crash | spike
	Region   int     // crash: endpoint index; -1 otherwise
	Desc     string
}
