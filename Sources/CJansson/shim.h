// The only place jansson's header is included. Swift reaches it through SluiceWire's JSON layer.
#include <jansson.h>
