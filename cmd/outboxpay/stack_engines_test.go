package main

import (
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// stackEngine is one way to run the compose stack: its engine (make's
// ENGINE) and the compose files it uses.
type stackEngine struct {
	engine string
	files  []string
}

var stackEngines = []stackEngine{
	{"debezium", []string{"docker-compose.yml"}},
	{"embedded", []string{"docker-compose.yml", "docker-compose.embedded.yml"}},
}

// Each image is built by one service at most, and a service that runs an
// image another service builds neither pulls nor builds it and starts after
// its builder: Compose's Bake builder fails when two services build one
// tag ("image already exists").
func TestComposeBuildsEachImageOnce(t *testing.T) {
	for _, se := range stackEngines {
		t.Run(se.engine, func(t *testing.T) {
			cf := composeConfig(t, se.files...)
			// docker-compose 1.29 drops pull_policy when it merges files: a
			// service no override names is read from the first file.
			first := composeConfig(t, se.files[0])
			overridden := map[string]bool{}
			for _, f := range se.files[1:] {
				var o struct {
					Services map[string]any `yaml:"services"`
				}
				readYAML(t, filepath.Join(repoRoot, f), &o)
				for n := range o.Services {
					overridden[n] = true
				}
			}
			builder := map[string]string{} // image -> the service that builds it
			for _, name := range slices.Sorted(func(yield func(string) bool) {
				for n := range cf.Services {
					if !yield(n) {
						return
					}
				}
			}) {
				s := cf.Services[name]
				if s.Build == nil {
					continue
				}
				if other, ok := builder[s.Image]; ok {
					t.Errorf("%s and %s both build %s", other, name, s.Image)
				}
				builder[s.Image] = name
			}
			users := 0
			for name, s := range cf.Services {
				b, ok := builder[s.Image]
				if !ok || b == name {
					continue
				}
				users++
				policy := s.PullPolicy
				if !overridden[name] {
					policy = first.Services[name].PullPolicy
				}
				if s.Build != nil || policy != "never" {
					t.Errorf("%s runs %s, which %s builds: build %v, pull_policy %q; want no build and pull_policy never", name, s.Image, b, s.Build, policy)
				}
				if !dependsOn(cf, name, b) {
					t.Errorf("%s runs %s but does not depend on %s, which builds it", name, s.Image, b)
				}
			}
			if b := builder["outboxpay:local"]; b == "" || users < 8 {
				t.Errorf("outboxpay:local built by %q, run by %d other services", b, users)
			}
		})
	}
}

// dependsOn reports whether service from depends on service to, directly or
// through others.
func dependsOn(cf composeFile, from, to string) bool {
	seen := map[string]bool{}
	var walk func(string) bool
	walk = func(s string) bool {
		if seen[s] {
			return false
		}
		seen[s] = true
		for d := range cf.Services[s].DependsOn {
			if d == to || walk(d) {
				return true
			}
		}
		return false
	}
	return walk(from)
}

// debeziumVolumes are the VOLUMEs of quay.io/debezium/connect:3.0's base
// image (debezium/container-images connect-base/3.0/Dockerfile): a
// container keeps their content from its first start, whatever a rebuilt
// image holds.
var debeziumVolumes = []string{"/kafka/data", "/kafka/logs", "/kafka/config"}

// The JMX exporter's rules are in the image outside the base image's
// volumes, and the entrypoint attaches the agent with them (once, on the
// port the compose file publishes), so a rebuilt image's metrics.yaml
// applies without `up -V`.
func TestDebeziumMetricsRulesOutsideVolumes(t *testing.T) {
	var dest string
	for _, l := range dockerfile(t, filepath.Join(repoRoot, "connect", "debezium", "Dockerfile")) {
		f := strings.Fields(l)
		if strings.EqualFold(f[0], "COPY") && slices.Contains(f, "metrics.yaml") {
			dest = f[len(f)-1]
		}
		if strings.EqualFold(f[0], "VOLUME") {
			t.Errorf("the Dockerfile declares a volume: %s", l)
		}
	}
	if dest == "" {
		t.Fatal("connect/debezium/Dockerfile does not copy metrics.yaml")
	}
	for _, v := range debeziumVolumes {
		if dest == v || strings.HasPrefix(dest, v+"/") {
			t.Errorf("metrics.yaml goes to %s, in the base image's volume %s", dest, v)
		}
	}

	kafkaOpts := debeziumEntrypointKafkaOpts(t)
	agents := regexp.MustCompile(`-javaagent:\S*jmx_prometheus_javaagent\S*=(\d+):(\S+)`).FindAllStringSubmatch(kafkaOpts, -1)
	if len(agents) != 1 || agents[0][2] != dest {
		t.Fatalf("KAFKA_OPTS %q: want one JMX exporter agent with the rules at %s", kafkaOpts, dest)
	}
	connectSvc := composeConfig(t, "docker-compose.yml").Services["connect"]
	if port, _ := strconv.Atoi(agents[0][1]); !slices.Contains(connectSvc.containerPorts(), port) {
		t.Errorf("the agent listens on %d; connect publishes %v", port, connectSvc.containerPorts())
	}
	if _, ok := connectSvc.Environment["ENABLE_JMX_EXPORTER"]; ok {
		t.Error("connect sets ENABLE_JMX_EXPORTER: Debezium's entrypoint would attach a second agent reading /kafka/config/metrics.yaml")
	}
}

// debeziumEntrypointKafkaOpts runs connect/debezium/rest-auth-entrypoint.sh
// with the compose file's environment plus ENABLE_JMX_EXPORTER=true, up to
// Debezium's entrypoint, and returns the KAFKA_OPTS it hands on; it fails
// if ENABLE_JMX_EXPORTER reaches Debezium's entrypoint.
func debeziumEntrypointKafkaOpts(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "connect", "debezium", "rest-auth-entrypoint.sh"))
	if err != nil {
		t.Fatal(err)
	}
	script := strings.ReplaceAll(string(raw), "/kafka/config/rest-auth", t.TempDir())
	script = strings.ReplaceAll(script, "exec /docker-entrypoint.sh", "exec env #")
	cmd := exec.Command("bash", "-c", script, "rest-auth-entrypoint.sh", "start")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "ENABLE_JMX_EXPORTER=true"}
	for k, v := range composeConfig(t, "docker-compose.yml").Services["connect"].Environment {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rest-auth-entrypoint.sh: %v", err)
	}
	var opts string
	for _, l := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(l, "=")
		switch k {
		case "KAFKA_OPTS":
			opts = v
		case "ENABLE_JMX_EXPORTER":
			t.Errorf("ENABLE_JMX_EXPORTER=%s reaches Debezium's entrypoint", v)
		}
	}
	return opts
}

// With either engine, Prometheus scrapes only targets that serve metrics:
// the running engine's, never the other's (which would be down for good).
func TestPrometheusScrapesTheRunningEngine(t *testing.T) {
	debeziumPort := regexp.MustCompile(`=(\d+):`).FindStringSubmatch(debeziumEntrypointKafkaOpts(t))
	if debeziumPort == nil {
		t.Fatal("no JMX exporter port in the Debezium entrypoint's KAFKA_OPTS")
	}
	for _, se := range stackEngines {
		t.Run(se.engine, func(t *testing.T) {
			cf := composeConfig(t, se.files...)
			connectSvc := cf.Services["connect"]
			enginePort := debeziumPort[1]
			if se.engine == "embedded" {
				_, enginePort, _ = net.SplitHostPort(connectSvc.Environment["CONNECT_ADDR"])
			}
			jobs := prometheusJobs(t, cf.Services["prometheus"])
			connectTargets := 0
			for job, targets := range jobs {
				for _, target := range targets {
					host, port, err := net.SplitHostPort(target)
					if err != nil {
						t.Fatalf("job %s: target %q: %v", job, target, err)
					}
					if host == "localhost" {
						continue
					}
					s, ok := cf.Services[host]
					n, _ := strconv.Atoi(port)
					if !ok || !slices.Contains(s.containerPorts(), n) {
						t.Errorf("job %s scrapes %s: no service %q with port %s", job, target, host, port)
					}
					if host == "connect" {
						connectTargets++
						if port != enginePort {
							t.Errorf("job %s scrapes %s; the %s engine serves its metrics on port %s", job, target, se.engine, enginePort)
						}
					}
				}
			}
			if connectTargets != 1 {
				t.Errorf("%d scrape targets on connect, want 1: %v", connectTargets, jobs)
			}
		})
	}
}

// prometheusJobs returns the scrape targets of each job of the Prometheus
// service's config: static ones and those of file_sd files, read through
// the service's bind mounts (a file that is not mounted gives none).
func prometheusJobs(t *testing.T, prom composeService) map[string][]string {
	t.Helper()
	mounts := map[string]string{} // container path -> host path
	for _, v := range prom.Volumes {
		parts := strings.Split(v.(string), ":")
		if len(parts) >= 2 && filepath.IsAbs(parts[0]) {
			mounts[parts[1]] = parts[0]
		}
	}
	host := func(p string) string {
		for c, h := range mounts {
			if p == c || strings.HasPrefix(p, c+"/") {
				return h + strings.TrimPrefix(p, c)
			}
		}
		return ""
	}
	configFile := host("/etc/prometheus/prometheus.yml")
	if configFile == "" {
		t.Fatalf("prometheus mounts no /etc/prometheus/prometheus.yml: %v", prom.Volumes)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
			FileSDConfigs []struct {
				Files []string `yaml:"files"`
			} `yaml:"file_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, configFile, &cfg)
	jobs := map[string][]string{}
	for _, sc := range cfg.ScrapeConfigs {
		jobs[sc.JobName] = nil
		for _, st := range sc.StaticConfigs {
			jobs[sc.JobName] = append(jobs[sc.JobName], st.Targets...)
		}
		for _, fs := range sc.FileSDConfigs {
			for _, pattern := range fs.Files {
				if !path.IsAbs(pattern) {
					t.Fatalf("job %s: file_sd file %s is not absolute", sc.JobName, pattern)
				}
				h := host(pattern)
				if h == "" {
					continue
				}
				matches, err := filepath.Glob(h)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range matches {
					var groups []struct {
						Targets []string `yaml:"targets"`
					}
					readYAML(t, m, &groups)
					for _, g := range groups {
						jobs[sc.JobName] = append(jobs[sc.JobName], g.Targets...)
					}
				}
			}
		}
	}
	return jobs
}

// The CI workflow's legs use make's compose files for their engine, also in
// the plain `docker compose` commands of the failure diagnostics.
func TestComposeWorkflowUsesTheLegsFiles(t *testing.T) {
	var wf struct {
		Jobs map[string]struct {
			Env      map[string]string `yaml:"env"`
			Strategy struct {
				Matrix struct {
					Include []map[string]string `yaml:"include"`
				} `yaml:"matrix"`
			} `yaml:"strategy"`
			Steps []struct {
				Name string            `yaml:"name"`
				Run  string            `yaml:"run"`
				Env  map[string]string `yaml:"env"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	readYAML(t, filepath.Join(repoRoot, ".github", "workflows", "compose.yml"), &wf)
	job, ok := wf.Jobs["stack"]
	if !ok {
		t.Fatal("the workflow has no job stack")
	}
	var engines []string
	for _, leg := range job.Strategy.Matrix.Include {
		engines = append(engines, leg["engine"])
		out, err := exec.Command("make", "-s", "-n", "-C", repoRoot, "down", "ENGINE="+leg["engine"]).Output()
		if err != nil {
			t.Fatalf("make -n down ENGINE=%s: %v", leg["engine"], err)
		}
		var files []string
		for _, m := range regexp.MustCompile(`-f (\S+)`).FindAllStringSubmatch(string(out), -1) {
			files = append(files, m[1])
		}
		if got := strings.Split(leg["compose_file"], ":"); !slices.Equal(got, files) {
			t.Errorf("leg %s: compose_file %v; make uses %v", leg["engine"], got, files)
		}
		for _, se := range stackEngines {
			if se.engine == leg["engine"] && !slices.Equal(se.files, files) {
				t.Errorf("leg %s: make uses %v; the stack checks read %v", se.engine, files, se.files)
			}
		}
	}
	slices.Sort(engines)
	if !slices.Equal(engines, []string{"debezium", "embedded"}) {
		t.Errorf("the workflow's legs: %v", engines)
	}
	if job.Env["COMPOSE_FILE"] != "${{ matrix.compose_file }}" {
		t.Errorf("job env COMPOSE_FILE %q: the plain docker compose commands would read docker-compose.yml alone", job.Env["COMPOSE_FILE"])
	}
	composeRuns := 0
	for _, st := range job.Steps {
		if _, ok := st.Env["COMPOSE_FILE"]; ok {
			t.Errorf("step %q sets its own COMPOSE_FILE", st.Name)
		}
		composeRuns += strings.Count(st.Run, "docker compose ")
	}
	if composeRuns == 0 {
		t.Error("no step runs docker compose; the check read nothing")
	}
}
