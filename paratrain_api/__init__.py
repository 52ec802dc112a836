"""The wire contract's generated stubs (v1/), the bottom layer that server and clients import (protogen)."""
