// Package experiment runs suites of conversions and baselines over a matrix of settings and writes their figures as the 2014 journal's tables, CSV, JSON and plots.
package experiment
