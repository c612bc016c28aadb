package worker

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/outboxpay/outboxpay/connect"
)

// Connectors returns the names of the connectors, sorted.
func (w *Worker) Connectors() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	names := slices.Sorted(maps.Keys(w.connectors))
	if names == nil {
		names = []string{}
	}
	return names
}

// Info returns the connector's config and task ids (GET /connectors/{name}).
func (w *Worker) Info(name string) (connect.ConnectorInfo, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, err := w.get(name)
	if err != nil {
		return connect.ConnectorInfo{}, err
	}
	return w.info(c), nil
}

// Config returns the connector's config as stored, ${env:...} kept, a
// literal password shown as HiddenPassword.
func (w *Worker) Config(name string) (map[string]string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, err := w.get(name)
	if err != nil {
		return nil, err
	}
	return masked(c.config), nil
}

// HiddenPassword stands for a password in configs the Worker returns, as
// Kafka Connect's Password.HIDDEN.
const HiddenPassword = "[hidden]"

// passwordKey is the config key whose literal value is never shown.
const passwordKey = "database.password"

// masked returns a copy of config with every literal password replaced by
// HiddenPassword. A value that is a single ${env:NAME} reference is shown:
// it names the variable, not its value.
func masked(config map[string]string) map[string]string {
	out := maps.Clone(config)
	if v, ok := out[passwordKey]; ok && v != "" && !isSingleEnvRef(v) {
		out[passwordKey] = HiddenPassword
	}
	return out
}

func isSingleEnvRef(v string) bool {
	name, ok := strings.CutPrefix(v, "${env:")
	if !ok {
		return false
	}
	name, ok = strings.CutSuffix(name, "}")
	return ok && connect.HasEnvRef(v) && !strings.ContainsAny(name, "${}")
}

// Status returns the states of the connector and its task.
func (w *Worker) Status(name string) (connect.ConnectorStatus, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, err := w.get(name)
	if err != nil {
		return connect.ConnectorStatus{}, err
	}
	return w.status(c), nil
}

// TaskStatus returns the state of one task of the connector.
func (w *Worker) TaskStatus(name string, taskID int) (connect.TaskStatus, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, err := w.get(name)
	if err != nil {
		return connect.TaskStatus{}, err
	}
	for _, t := range w.status(c).Tasks {
		if t.ID == taskID {
			return t, nil
		}
	}
	return connect.TaskStatus{}, fmt.Errorf("task %s-%d: %w", name, taskID, ErrTaskNotFound)
}

// Tasks returns the connector's task configs: none when it is stopped or
// failed to start.
func (w *Worker) Tasks(name string) ([]connect.TaskInfo, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, err := w.get(name)
	if err != nil {
		return nil, err
	}
	tasks := []connect.TaskInfo{}
	if c.hasTask() {
		config := masked(c.config)
		config["task.class"] = TaskClass
		tasks = append(tasks, connect.TaskInfo{ID: connect.TaskID{Connector: c.name, Task: 0}, Config: config})
	}
	return tasks, nil
}

// info is the connector's ConnectorInfo. Under w.mu.
func (w *Worker) info(c *connector) connect.ConnectorInfo {
	ids := []connect.TaskID{}
	if c.hasTask() {
		ids = append(ids, connect.TaskID{Connector: c.name, Task: 0})
	}
	return connect.ConnectorInfo{Name: c.name, Config: masked(c.config), Tasks: ids, Type: ConnectorType}
}

// status derives the connector's and its task's states from the target
// state and the newest run. Under w.mu.
func (w *Worker) status(c *connector) connect.ConnectorStatus {
	st := connect.ConnectorStatus{Name: c.name, Tasks: []connect.TaskStatus{}, Type: ConnectorType}
	conn := connect.StateInfo{WorkerID: w.id}
	task := connect.StateInfo{WorkerID: w.id}
	r := c.run
	switch {
	case c.target == TargetStopped:
		conn.State = connect.StateStopped
	case c.failed():
		conn.State, conn.Trace = connect.StateFailed, r.trace
	case c.target == TargetPaused:
		conn.State, task.State = connect.StatePaused, connect.StatePaused
		if r != nil {
			switch r.phase {
			case phaseRunning: // asked to stop, not returned yet
				task.State = connect.StateRunning
			case phaseFailed:
				task.State, task.Trace = connect.StateFailed, r.trace
			}
		}
	case r == nil:
		conn.State, task.State = connect.StateUnassigned, connect.StateUnassigned
	default:
		conn.State = connect.StateRunning
		switch r.phase {
		case phaseStarting:
			task.State = connect.StateUnassigned
			if r.restarting {
				task.State = connect.StateRestarting
			}
			if c.task == nil { // the connector is being built
				conn.State = task.State
			}
		case phaseRunning:
			task.State = connect.StateRunning
		case phaseFailed:
			task.State, task.Trace = connect.StateFailed, r.trace
		default:
			task.State = connect.StateUnassigned
		}
	}
	st.Connector = conn
	if task.State != "" {
		st.Tasks = append(st.Tasks, connect.TaskStatus{ID: 0, StateInfo: task})
	}
	return st
}
