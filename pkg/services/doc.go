// Package services picks the services a VM was running from its process list and writes the run
// configurations (services.yaml, an equivalent Dockerfile, compose.yaml) that start them in an image.
package services
