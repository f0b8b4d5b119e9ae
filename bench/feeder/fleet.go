package main

import (
	"fmt"
	"math"
	"strconv"
)

// area is the service area's box, bench/fanout.py's AREA: west, south, east, north.
var area = [4]float64{77.49, 12.86, 77.71, 13.08}

var vehicles = [4]string{"bike", "scooter", "car", "walk"}

// degToRad is CPython's math.radians factor, computed as it does (pi / 180.0 in float64 arithmetic, not
// Go's exact constant arithmetic), so headings turn into the same radians.
var degToRad = func() float64 { pi := math.Pi; return pi / 180.0 }()

// fleet is bench/fanout.py's Fleet: count couriers spread evenly over the area, each driving straight at
// 3-12 m/s and turning back at the box's edge. Its random numbers are Python's random.Random(seed), drawn in
// the same order, so the same seed gives the same couriers as the Python feeder.
type fleet struct {
	ids     []string
	keys    [][]byte
	lon     []float64
	lat     []float64
	speed   []float64
	heading []float64
	vehicle []string
	order   []string // "" for none
}

func courierID(index int) string { return fmt.Sprintf("fan-%05d", index) }

func newFleet(count int, seed uint32) *fleet {
	rng := newPyRandom(seed)
	f := &fleet{
		ids: make([]string, count), keys: make([][]byte, count),
		lon: make([]float64, count), lat: make([]float64, count),
		speed: make([]float64, count), heading: make([]float64, count),
		vehicle: make([]string, count), order: make([]string, count),
	}
	for i := range count {
		f.ids[i] = courierID(i)
		f.keys[i] = []byte(f.ids[i])
		f.vehicle[i] = vehicles[i%4]
		if i%3 != 0 {
			f.order[i] = fmt.Sprintf("order-%06d", i)
		}
	}
	for i := range count {
		f.lon[i] = rng.uniform(area[0], area[2])
	}
	for i := range count {
		f.lat[i] = rng.uniform(area[1], area[3])
	}
	for i := range count {
		f.speed[i] = rng.uniform(3.0, 12.0)
	}
	for i := range count {
		f.heading[i] = rng.uniform(0.0, 360.0)
	}
	return f
}

// step is one second of driving for courier index (Fleet.step).
func (f *fleet) step(index int) {
	metres := f.speed[index]
	heading := f.heading[index] * degToRad
	lat := f.lat[index] + metres*math.Cos(heading)/111_320
	lon := f.lon[index] + metres*math.Sin(heading)/109_000
	if !(area[0] < lon && lon < area[2] && area[1] < lat && lat < area[3]) {
		f.heading[index] = math.Mod(f.heading[index]+180.0, 360.0)
		return
	}
	f.lat[index], f.lon[index] = lat, lon
}

// appendPosition appends courier index's position at ts (ms) as msgspec encodes tracker.models.Position
// (omit_defaults, fields in declaration order): lat and lon rounded to 6 decimals, speed and heading to 1,
// accuracy 5.0, ts and accepted_at_ms both ts, order_id left out when the courier has none. The strings it
// writes (ids, vehicles, order ids) need no JSON escaping.
func (f *fleet) appendPosition(b []byte, index int, ts int64) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, f.ids[index]...)
	b = append(b, `","lat":`...)
	b = appendRounded(b, f.lat[index], 6)
	b = append(b, `,"lon":`...)
	b = appendRounded(b, f.lon[index], 6)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"accepted_at_ms":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"speed":`...)
	b = appendRounded(b, f.speed[index], 1)
	b = append(b, `,"heading":`...)
	b = appendRounded(b, f.heading[index], 1)
	b = append(b, `,"accuracy":5.0,"vehicle":"`...)
	b = append(b, f.vehicle[index]...)
	if order := f.order[index]; order != "" {
		b = append(b, `","order_id":"`...)
		b = append(b, order...)
	}
	return append(b, `"}`...)
}

// appendRounded appends Python's repr(round(x, digits)) for the values a fleet holds (0 <= |x| < 1e15): the
// correctly rounded decimal (strconv rounds the exact binary value half to even, as CPython's round does)
// without its trailing zeros but with at least one digit after the point. That is the shortest repr of the
// float round() returns, since a decimal of at most 15 significant digits names one float64 of its own.
func appendRounded(b []byte, x float64, digits int) []byte {
	b = strconv.AppendFloat(b, x, 'f', digits, 64)
	end := len(b)
	for b[end-1] == '0' && b[end-2] != '.' {
		end--
	}
	return b[:end]
}

// pyFloat is Python's repr of a float for the values printed here (seconds: 1e-4 <= x < 1e16, or 0).
func pyFloat(x float64) string {
	s := strconv.FormatFloat(x, 'f', -1, 64)
	for _, c := range s {
		if c == '.' {
			return s
		}
	}
	return s + ".0"
}

// pyRandom is CPython's random.Random: MT19937 seeded by init_by_array with the seed's 32-bit words (one, for
// a seed below 2**32), random() from two outputs as 53 bits.
type pyRandom struct {
	mt  [624]uint32
	mti int
}

func newPyRandom(seed uint32) *pyRandom {
	r := &pyRandom{}
	r.initGenrand(19650218)
	key := []uint32{seed}
	i, j := 1, 0
	for k := max(624, len(key)); k > 0; k-- {
		r.mt[i] = (r.mt[i] ^ ((r.mt[i-1] ^ (r.mt[i-1] >> 30)) * 1664525)) + key[j] + uint32(j)
		i++
		j++
		if i >= 624 {
			r.mt[0] = r.mt[623]
			i = 1
		}
		if j >= len(key) {
			j = 0
		}
	}
	for k := 623; k > 0; k-- {
		r.mt[i] = (r.mt[i] ^ ((r.mt[i-1] ^ (r.mt[i-1] >> 30)) * 1566083941)) - uint32(i)
		i++
		if i >= 624 {
			r.mt[0] = r.mt[623]
			i = 1
		}
	}
	r.mt[0] = 0x80000000
	return r
}

func (r *pyRandom) initGenrand(s uint32) {
	r.mt[0] = s
	for i := 1; i < 624; i++ {
		r.mt[i] = 1812433253*(r.mt[i-1]^(r.mt[i-1]>>30)) + uint32(i)
	}
	r.mti = 624
}

func (r *pyRandom) uint32() uint32 {
	const upper, lower = 0x80000000, 0x7fffffff
	if r.mti >= 624 {
		var kk int
		for kk = 0; kk < 624-397; kk++ {
			y := (r.mt[kk] & upper) | (r.mt[kk+1] & lower)
			r.mt[kk] = r.mt[kk+397] ^ (y >> 1) ^ ((y & 1) * 0x9908b0df)
		}
		for ; kk < 623; kk++ {
			y := (r.mt[kk] & upper) | (r.mt[kk+1] & lower)
			r.mt[kk] = r.mt[kk+(397-624)] ^ (y >> 1) ^ ((y & 1) * 0x9908b0df)
		}
		y := (r.mt[623] & upper) | (r.mt[0] & lower)
		r.mt[623] = r.mt[396] ^ (y >> 1) ^ ((y & 1) * 0x9908b0df)
		r.mti = 0
	}
	y := r.mt[r.mti]
	r.mti++
	y ^= y >> 11
	y ^= (y << 7) & 0x9d2c5680
	y ^= (y << 15) & 0xefc60000
	y ^= y >> 18
	return y
}

// random is random.random(): [0, 1) with 53 random bits.
func (r *pyRandom) random() float64 {
	a, b := r.uint32()>>5, r.uint32()>>6
	return (float64(a)*67108864.0 + float64(b)) * (1.0 / 9007199254740992.0)
}

// uniform is random.uniform(a, b): a + (b - a) * random().
func (r *pyRandom) uniform(a, b float64) float64 { return a + (b-a)*r.random() }
