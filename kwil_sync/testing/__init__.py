"""Stand-ins for what cannot run on a development machine, shipped like `prefect.testing`.

- `arlocal`: start and stop a real arlocal (npm) on 127.0.0.1.
- `bundler`: an Irys-style bundler stand-in that bundles into arlocal.
- `kwil_node`: a Kwil provider stand-in speaking kwild's JSON-RPC.

The last two are stand-ins, not the real services: see each module's docstring for
what they model and what they do not.
"""
