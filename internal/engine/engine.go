package engine

import (
	"context"
	"fmt"

	"github.com/moby/moby/client"
)

// Connect connects to the engine DOCKER_HOST names (the local socket by default) and
// negotiates the API version down to the engine's (1.41 for Docker 20.10). The caller closes
// the client.
func Connect(ctx context.Context) (*client.Client, error) {
	c, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("creating docker engine client: %w", err)
	}
	if _, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		c.Close()
		return nil, fmt.Errorf("connecting to the docker engine at %s: %w", c.DaemonHost(), err)
	}
	return c, nil
}
