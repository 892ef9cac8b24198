package services

import (
	"reflect"
	"testing"
)

func TestFilterEnvKeepsOnlyTheAllowlist(t *testing.T) {
	c := Config{Services: []Service{
		{Name: "api", Env: []string{"PATH=/usr/bin", "DB_PASSWORD=hunter2", "LANG=C.UTF-8", "LC_ALL=C", "API_KEY=sk-123",
			"HOME=/srv", "TZ=UTC", "AWS_SECRET_ACCESS_KEY=x", "LC_=odd", "DB_PASSWORD=again"}},
		{Name: "web", Env: []string{"PATH=/bin", "USER=www-data"}},
	}}
	left := c.FilterEnv()
	if want := []string{"PATH=/usr/bin", "LANG=C.UTF-8", "LC_ALL=C", "HOME=/srv", "TZ=UTC"}; !reflect.DeepEqual(c.Services[0].Env, want) {
		t.Errorf("api keeps %q, want %q", c.Services[0].Env, want)
	}
	if want := []string{"PATH=/bin", "USER=www-data"}; !reflect.DeepEqual(c.Services[1].Env, want) {
		t.Errorf("web keeps %q, want %q", c.Services[1].Env, want)
	}
	want := []EnvLeftOut{{Service: "api", Names: []string{"API_KEY", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "LC_"}}}
	if !reflect.DeepEqual(left, want) {
		t.Errorf("left out %+v, want %+v", left, want)
	}
}
