package gossip

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// maxSeedFileBytes bounds a signing key file: a seed is 58 characters.
const maxSeedFileBytes = 4096

// LoadSeedFile reads a signing key file written by `holdfast keys`. The
// file must not be readable or writable by group or others (0600 or
// stricter): a seed anyone on the host can read lets them speak for the
// region.
func LoadSeedFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("signing key %s is not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("signing key %s has mode %#o: it must not be accessible by group or others (chmod 600)", path, st.Mode().Perm())
	}
	if st.Size() > maxSeedFileBytes {
		return nil, fmt.Errorf("signing key %s is %d bytes: not a seed file", path, st.Size())
	}
	b := make([]byte, st.Size())
	if _, err := f.Read(b); err != nil && st.Size() > 0 {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if _, err := ParseSeed(b); err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return trimSpace(b), nil
}

// WriteSeedFile creates a new key pair, writes its seed to path (mode
// 0600; an existing file is never overwritten) and returns the public key.
func WriteSeedFile(path string) (string, error) {
	seed, pub, err := GenerateSeed()
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("%s already exists: refusing to overwrite a signing key", path)
		}
		return "", err
	}
	_, werr := f.Write(append(seed, '\n'))
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(path)
		return "", err
	}
	return pub, nil
}
