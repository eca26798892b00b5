package media

import (
	"errors"
	"fmt"
)

// LayerPinner is implemented by subscriber endpoints whose viewer may pin
// a simulcast layer: "h" (the top), "m", "l" (the lowest), or "auto" (or
// "") for the layer its estimated bandwidth carries. Pinning before the
// offer takes effect when the viewer starts; a broadcast without simulcast
// ignores it.
type LayerPinner interface {
	SetLayer(layer string) error
}

// LayerRelayer is implemented by subscriber endpoints that can send a
// simulcast broadcast's every layer, each as a video section of its own: a
// relay to another node, whose viewers then choose a layer each. The
// endpoint does so when its offer has a video section for every layer;
// otherwise it sends the top layer only, as a viewer pinned to h.
// RelayLayers is called before the offer.
type LayerRelayer interface {
	RelayLayers()
}

// ErrBadLayer: a layer name other than h, m, l or auto.
var ErrBadLayer = errors.New("unknown simulcast layer")

// CheckLayer returns ErrBadLayer, wrapped, for a name other than h, m, l,
// auto or "".
func CheckLayer(name string) error {
	switch name {
	case "", "auto", "h", "m", "l":
		return nil
	}
	return fmt.Errorf("%w %q: want h, m, l or auto", ErrBadLayer, name)
}
