package experiment

import (
	"fmt"
	"math"
)

// barChart is a horizontal stacked bar chart: groups (one per VM) of labelled rows, each bar
// stacked from named segments.
type barChart struct {
	Title    string
	Unit     string  // axis unit after scaling: "MB", "s"
	Scale    float64 // values are divided by it for the axis
	Segments []string
	Groups   []barGroup
}

type barGroup struct {
	Name string
	Rows []barRow
}

type barRow struct {
	Label  string
	Values map[string]float64
}

const (
	chartW  = 1100.0
	rowH    = 17.0
	barH    = 12.0
	padTop  = 30.0
	padSide = 12.0
)

func (c *barChart) total(r barRow) float64 {
	var t float64
	for _, s := range c.Segments {
		t += r.Values[s]
	}
	return t
}

// layout returns the label column's width, the legend's height and the chart's height.
func (c *barChart) layout() (labelW, legendH, h float64) {
	for _, g := range c.Groups {
		labelW = math.Max(labelW, textWidth(g.Name))
		for _, r := range g.Rows {
			labelW = math.Max(labelW, textWidth(r.Label)+charW)
		}
	}
	labelW = math.Min(labelW+padSide, chartW/2)
	legendH = float64(len(legendLines(c.Segments, chartW-2*padSide))) * rowH
	rows := 0
	for _, g := range c.Groups {
		rows += len(g.Rows) + 1
	}
	h = padTop + legendH + 8 + float64(rows)*rowH + 40
	return labelW, legendH, h
}

func (c *barChart) size() (float64, float64) {
	_, _, h := c.layout()
	return chartW, h
}

func (c *barChart) draw(cv canvas) {
	labelW, legendH, h := c.layout()
	cv.text(padSide, 18, c.Title, anchorStart, black)
	drawLegend(cv, c.Segments, padSide, padTop, chartW-2*padSide)
	x0, x1 := labelW+padSide, chartW-90
	var maxV float64
	for _, g := range c.Groups {
		for _, r := range g.Rows {
			maxV = math.Max(maxV, c.total(r)/c.Scale)
		}
	}
	step, top := niceAxis(maxV)
	xOf := func(v float64) float64 { return x0 + (x1-x0)*v/top }
	y := padTop + legendH + 8
	yEnd := h - 40
	for v := 0.0; v <= top+step/2; v += step {
		cv.line(xOf(v), y, xOf(v), yEnd, light, 1)
		cv.text(xOf(v), yEnd+14, tickLabel(v, step), anchorMiddle, grey)
	}
	cv.text((x0+x1)/2, yEnd+30, c.Unit, anchorMiddle, black)
	for _, g := range c.Groups {
		cv.text(padSide, y+ascent, g.Name, anchorStart, black)
		cv.line(padSide, y+rowH-2, x1, y+rowH-2, grey, 1)
		y += rowH
		for _, r := range g.Rows {
			cv.text(x0-6, y+ascent, r.Label, anchorEnd, black)
			x := x0
			for i, s := range c.Segments {
				v := r.Values[s] / c.Scale
				if v <= 0 {
					continue
				}
				w := xOf(v) - x0
				cv.rect(x, y+(rowH-barH)/2, w, barH, palette[i%len(palette)])
				x += w
			}
			cv.text(x+4, y+ascent, trimNum(c.total(r)/c.Scale), anchorStart, grey)
			y += rowH
		}
	}
	cv.line(x0, padTop+legendH+8, x0, yEnd, black, 1)
}

// legendLines splits the legend's entries into lines that fit width.
func legendLines(names []string, width float64) [][]int {
	var lines [][]int
	var cur []int
	x := 0.0
	for i, n := range names {
		w := 16 + textWidth(n) + 14
		if len(cur) > 0 && x+w > width {
			lines = append(lines, cur)
			cur, x = nil, 0
		}
		cur = append(cur, i)
		x += w
	}
	if len(cur) > 0 {
		lines = append(lines, cur)
	}
	return lines
}

func drawLegend(cv canvas, names []string, x0, y0, width float64) {
	for li, line := range legendLines(names, width) {
		x, y := x0, y0+float64(li)*rowH
		for _, i := range line {
			cv.rect(x, y+2, 11, 11, palette[i%len(palette)])
			cv.text(x+16, y+ascent, names[i], anchorStart, black)
			x += 16 + textWidth(names[i]) + 14
		}
	}
}

// niceAxis picks a tick step of 1, 2 or 5 times a power of ten and the axis' end for max.
func niceAxis(max float64) (step, top float64) {
	if max <= 0 {
		return 1, 1
	}
	raw := max / 6
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step = mag * 10
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*mag {
			step = m * mag
			break
		}
	}
	return step, math.Ceil(max/step) * step
}

func trimNum(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// tickLabel formats an axis value with as many decimals as the step needs.
func tickLabel(v, step float64) string {
	d := 0
	if step < 1 {
		d = int(math.Ceil(-math.Log10(step) - 1e-9))
	}
	return fmt.Sprintf("%.*f", d, v)
}

// lineChart is a grid of panels of line series sharing their series names (and colors).
type lineChart struct {
	Title  string
	XLabel string
	Unit   string
	Scale  float64
	Series []string // names, for the legend and colors
	Panels []linePanel
}

type linePanel struct {
	Title string
	Lines map[string][][2]float64 // by series name
}

const (
	panelW = 540.0
	panelH = 300.0
	cols   = 2
)

func (c *lineChart) size() (float64, float64) {
	rows := (len(c.Panels) + cols - 1) / cols
	legendH := float64(len(legendLines(c.Series, chartW-2*padSide))) * rowH
	return chartW, padTop + legendH + float64(max(rows, 1))*panelH + 10
}

func (c *lineChart) draw(cv canvas) {
	cv.text(padSide, 18, c.Title, anchorStart, black)
	drawLegend(cv, c.Series, padSide, padTop, chartW-2*padSide)
	legendH := float64(len(legendLines(c.Series, chartW-2*padSide))) * rowH
	for i, p := range c.Panels {
		x := padSide + float64(i%cols)*(panelW+10)
		y := padTop + legendH + float64(i/cols)*panelH
		c.drawPanel(cv, p, x, y)
	}
}

func (c *lineChart) drawPanel(cv canvas, p linePanel, px, py float64) {
	x0, x1, y0, y1 := px+60, px+panelW-20, py+28, py+panelH-48
	var maxX, maxY float64
	for _, pts := range p.Lines {
		for _, pt := range pts {
			maxX, maxY = math.Max(maxX, pt[0]), math.Max(maxY, pt[1]/c.Scale)
		}
	}
	xs, xt := niceAxis(maxX)
	ys, yt := niceAxis(maxY)
	xOf := func(v float64) float64 { return x0 + (x1-x0)*v/xt }
	yOf := func(v float64) float64 { return y1 - (y1-y0)*v/yt }
	cv.text((x0+x1)/2, py+16, p.Title, anchorMiddle, black)
	for v := 0.0; v <= yt+ys/2; v += ys {
		cv.line(x0, yOf(v), x1, yOf(v), light, 1)
		cv.text(x0-5, yOf(v)+4, tickLabel(v, ys), anchorEnd, grey)
	}
	for v := 0.0; v <= xt+xs/2; v += xs {
		cv.text(xOf(v), y1+15, tickLabel(v, xs), anchorMiddle, grey)
	}
	cv.line(x0, y0, x0, y1, black, 1)
	cv.line(x0, y1, x1, y1, black, 1)
	cv.text((x0+x1)/2, y1+32, c.XLabel, anchorMiddle, black)
	cv.text(px+4, y0-6, c.Unit, anchorStart, black)
	for i, name := range c.Series {
		pts := p.Lines[name]
		col := palette[i%len(palette)]
		for k := 1; k < len(pts); k++ {
			cv.line(xOf(pts[k-1][0]), yOf(pts[k-1][1]/c.Scale), xOf(pts[k][0]), yOf(pts[k][1]/c.Scale), col, 2)
		}
	}
}

// drawing is a chart that can be sized and drawn.
type drawing interface {
	size() (w, h float64)
	draw(cv canvas)
}
