"""An ML2 mechanism driver that binds every port it is asked to bind.

The test control plane has Neutron without any L2 agent (no Open vSwitch,
no Linux bridge), and Nova's fake virt driver plugs nothing. The in-tree
mechanism drivers only bind a port on a host where their agent reports
alive, so without agents every port would end `binding_failed` and Nova
would put the server in ERROR. This driver binds any port on the first
flat or VLAN segment of its network, for any host, and marks it ACTIVE
at once, because no agent will ever report the port up.
"""

from neutron_lib import constants
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api
from oslo_log import log

LOG = log.getLogger(__name__)

BINDABLE_NETWORK_TYPES = (constants.TYPE_FLAT, constants.TYPE_VLAN)


class BindAllMechanismDriver(api.MechanismDriver):
    """Bind every port on a flat or VLAN segment; the VIF is plain OVS with no agent behind it."""

    vif_type = portbindings.VIF_TYPE_OVS
    vif_details = {
        portbindings.CAP_PORT_FILTER: False,
        portbindings.OVS_HYBRID_PLUG: False,
        portbindings.VIF_DETAILS_CONNECTIVITY: portbindings.CONNECTIVITY_L2,
    }

    def initialize(self):
        LOG.info("adminvms_bind_all: binding every port on %s segments", ", ".join(BINDABLE_NETWORK_TYPES))

    @property
    def connectivity(self):
        return portbindings.CONNECTIVITY_L2

    def bind_port(self, context):
        for segment in context.segments_to_bind:
            if segment[api.NETWORK_TYPE] in BINDABLE_NETWORK_TYPES:
                context.set_binding(
                    segment[api.ID],
                    self.vif_type,
                    dict(self.vif_details),
                    status=constants.PORT_STATUS_ACTIVE,
                )
                LOG.debug(
                    "adminvms_bind_all: bound port %s on host %s to segment %s",
                    context.current["id"],
                    context.host,
                    segment[api.ID],
                )
                return
        LOG.warning(
            "adminvms_bind_all: port %s has no flat or VLAN segment to bind: %s",
            context.current["id"],
            context.segments_to_bind,
        )
