package experiment

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// canvas is what charts draw on; svgCanvas and pngCanvas render the same drawing. Coordinates
// are pixels from the top left; text y is its baseline.
type canvas interface {
	rect(x, y, w, h float64, fill color.RGBA)
	line(x1, y1, x2, y2 float64, stroke color.RGBA, width float64)
	text(x, y float64, s string, anchor textAnchor, c color.RGBA)
}

type textAnchor int

const (
	anchorStart textAnchor = iota
	anchorMiddle
	anchorEnd
)

// Text metrics shared by both renderers: basicfont's 7x13 face.
const (
	charW  = 7.0
	lineH  = 13.0
	ascent = 11.0
)

func textWidth(s string) float64 { return float64(len(s)) * charW }

// svgCanvas writes SVG elements.
type svgCanvas struct {
	w, h float64
	b    bytes.Buffer
}

func newSVG(w, h float64) *svgCanvas { return &svgCanvas{w: w, h: h} }

func (s *svgCanvas) rect(x, y, w, h float64, fill color.RGBA) {
	fmt.Fprintf(&s.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x, y, w, h, hexColor(fill))
}

func (s *svgCanvas) line(x1, y1, x2, y2 float64, c color.RGBA, width float64) {
	fmt.Fprintf(&s.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%.1f"/>`+"\n", x1, y1, x2, y2, hexColor(c), width)
}

func (s *svgCanvas) text(x, y float64, str string, a textAnchor, c color.RGBA) {
	anchor := [...]string{"start", "middle", "end"}[a]
	fmt.Fprintf(&s.b, `<text x="%.1f" y="%.1f" text-anchor="%s" fill="%s">%s</text>`+"\n", x, y, anchor, hexColor(c), xmlEscape(str))
}

func (s *svgCanvas) writeTo(w io.Writer) error {
	_, err := fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="DejaVu Sans Mono, monospace" font-size="11.5">
<rect width="100%%" height="100%%" fill="#ffffff"/>
%s</svg>
`, s.w, s.h, s.w, s.h, s.b.String())
	return err
}

func hexColor(c color.RGBA) string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// pngCanvas rasterizes onto an RGBA image.
type pngCanvas struct{ img *image.RGBA }

func newPNG(w, h float64) *pngCanvas {
	img := image.NewRGBA(image.Rect(0, 0, int(math.Ceil(w)), int(math.Ceil(h))))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	return &pngCanvas{img: img}
}

func (p *pngCanvas) rect(x, y, w, h float64, fill color.RGBA) {
	r := image.Rect(int(math.Round(x)), int(math.Round(y)), int(math.Round(x+w)), int(math.Round(y+h)))
	draw.Draw(p.img, r, image.NewUniform(fill), image.Point{}, draw.Over)
}

// line draws a segment of the given width by stamping squares along it.
func (p *pngCanvas) line(x1, y1, x2, y2 float64, c color.RGBA, width float64) {
	steps := int(math.Max(math.Abs(x2-x1), math.Abs(y2-y1))) + 1
	half := math.Max(width/2, 0.5)
	for i := 0; i <= steps; i++ {
		t := float64(i) / float64(steps)
		x, y := x1+(x2-x1)*t, y1+(y2-y1)*t
		r := image.Rect(int(math.Floor(x-half+0.5)), int(math.Floor(y-half+0.5)), int(math.Floor(x+half+0.5)), int(math.Floor(y+half+0.5)))
		draw.Draw(p.img, r, image.NewUniform(c), image.Point{}, draw.Src)
	}
}

func (p *pngCanvas) text(x, y float64, s string, a textAnchor, c color.RGBA) {
	switch a {
	case anchorMiddle:
		x -= textWidth(s) / 2
	case anchorEnd:
		x -= textWidth(s)
	}
	d := font.Drawer{Dst: p.img, Src: image.NewUniform(c), Face: basicfont.Face7x13,
		Dot: fixed.P(int(math.Round(x)), int(math.Round(y)))}
	d.DrawString(asciiOnly(s))
}

func (p *pngCanvas) writeTo(w io.Writer) error { return png.Encode(w, p.img) }

// asciiOnly replaces what basicfont cannot draw.
func asciiOnly(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 32 || r > 126 {
			return '?'
		}
		return r
	}, s)
}

// palette colors series and segments, in order.
var palette = []color.RGBA{
	{0x4e, 0x79, 0xa7, 0xff}, {0xf2, 0x8e, 0x2b, 0xff}, {0x59, 0xa1, 0x4f, 0xff}, {0xe1, 0x57, 0x59, 0xff},
	{0x76, 0xb7, 0xb2, 0xff}, {0xed, 0xc9, 0x48, 0xff}, {0xb0, 0x7a, 0xa1, 0xff}, {0xff, 0x9d, 0xa7, 0xff},
	{0x9c, 0x75, 0x5f, 0xff}, {0xba, 0xb0, 0xac, 0xff}, {0x2f, 0x4b, 0x7c, 0xff}, {0x8c, 0xd1, 0x7d, 0xff},
	{0xd3, 0x72, 0x95, 0xff},
}

var (
	black = color.RGBA{0x22, 0x22, 0x22, 0xff}
	grey  = color.RGBA{0x88, 0x88, 0x88, 0xff}
	light = color.RGBA{0xe4, 0xe4, 0xe4, 0xff}
)
