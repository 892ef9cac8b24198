// Package convert is the conversion pipeline: from a live VM to a layered, runnable image.
package convert
