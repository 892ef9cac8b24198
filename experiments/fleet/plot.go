package main

import (
	"fmt"
	"math"
	"strings"
)

// plot draws fleet.svg: the registry's stored bytes after each VM, one line per strategy, and
// the floor as a dashed line.
func plot(res *Results) string {
	const w, h, left, right, top, bottom = 760.0, 440.0, 70.0, 190.0, 40.0, 50.0
	n := len(res.VMs)
	series := []struct {
		name, color string
		run         *Run
	}{
		{"one layer per VM", "#d62728", res.Runs["one-layer"]},
		{"per install set", "#1f77b4", res.Runs["single"]},
		{"package-grained", "#2ca02c", res.Runs["grained"]},
	}
	maxY := float64(res.Floor)
	for _, s := range series {
		for _, st := range s.run.Steps {
			maxY = math.Max(maxY, float64(st.Stored))
		}
	}
	maxY = niceCeil(maxY / (1 << 20))
	x := func(i int) float64 { return left + float64(i)*(w-left-right)/float64(max(n, 1)) }
	y := func(b float64) float64 { return h - bottom - (b/(1<<20))/maxY*(h-top-bottom) }
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", w, h)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%.0f" y="22" font-size="14">Registry bytes stored after each VM of the fleet (%d VMs)</text>`+"\n", left, n)
	for i := 0; i <= 5; i++ {
		v := maxY * float64(i) / 5
		yy := y(v * (1 << 20))
		p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, yy, w-right, yy)
		p(`<text x="%.1f" y="%.1f" text-anchor="end">%.0f MiB</text>`+"\n", left-6, yy+4, v)
	}
	for i := 0; i <= n; i++ {
		p(`<text x="%.1f" y="%.1f" text-anchor="middle">%d</text>`+"\n", x(i), h-bottom+16, i)
	}
	p(`<text x="%.1f" y="%.1f" text-anchor="middle">VMs converted</text>`+"\n", (left+w-right)/2, h-12)
	p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", left, h-bottom, w-right, h-bottom)
	p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", left, top, left, h-bottom)
	for k, s := range series {
		pts := []string{fmt.Sprintf("%.1f,%.1f", x(0), y(float64(s.run.Start)))}
		for i, st := range s.run.Steps {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i+1), y(float64(st.Stored))))
		}
		p(`<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", s.color, strings.Join(pts, " "))
		ly := top + 20 + float64(k)*20
		p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", w-right+12, ly, w-right+36, ly, s.color)
		p(`<text x="%.1f" y="%.1f">%s</text>`+"\n", w-right+42, ly+4, s.name)
	}
	fy := y(float64(res.Floor))
	p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#555" stroke-dasharray="6,4"/>`+"\n", left, fy, w-right, fy)
	ly := top + 20 + float64(len(series))*20
	p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#555" stroke-dasharray="6,4"/>`+"\n", w-right+12, ly, w-right+36, ly)
	p(`<text x="%.1f" y="%.1f">floor (distinct files)</text>`+"\n", w-right+42, ly+4)
	p("</svg>\n")
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*e {
			return m * e
		}
	}
	return 10 * e
}
