package region

// openStore opens the Pebble store of cfg.
func openStore(cfg Config) (Storage, error) {
	return OpenStore(cfg.DataDir, StoreOptions{Region: cfg.Name, FS: cfg.FS, NoSync: cfg.NoSync, Logger: cfg.Logger})
}

// reopener is implemented by storages that can drop a failed handle and
// reopen from what is durable (Store does).
type reopener interface{ Reopen() error }
